-- kpi.loss_reasons: lost deals per local month of closed_at and reason (NULL: no reason
-- given), with their share of the month's lost deals.
WITH lost AS (
    SELECT d.closed_month AS month, d.loss_reason_id, r.name AS loss_reason_name, d.amount_base
    FROM kpi.closed_deals d LEFT JOIN crm.loss_reasons r ON r.loss_reason_id = d.loss_reason_id
    WHERE d.status = 'lost'
),
totals AS (
    SELECT month, loss_reason_id, loss_reason_name, count(*) AS deals_lost, coalesce(sum(amount_base), 0) AS amount_lost
    FROM lost GROUP BY month, loss_reason_id, loss_reason_name
)
SELECT month, loss_reason_id, loss_reason_name, deals_lost, amount_lost,
       CAST(deals_lost AS DOUBLE) / CAST(sum(deals_lost) OVER (PARTITION BY month) AS DOUBLE) AS share
FROM totals
