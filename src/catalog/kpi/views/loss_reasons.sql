-- kpi.loss_reasons: lost deals per local month of closed_at and reason (NULL: no reason
-- given), with their share of the month's lost deals.
WITH lost AS (
    SELECT CAST(date_trunc('month', CAST(local_date(closed_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month,
           loss_reason_id, loss_reason_name, amount_base
    FROM kpi.deal_facts
    WHERE status = 'lost' AND closed_at IS NOT NULL
),
totals AS (
    SELECT month, loss_reason_id, loss_reason_name, count(*) AS deals_lost, coalesce(sum(amount_base), 0) AS amount_lost
    FROM lost GROUP BY month, loss_reason_id, loss_reason_name
)
SELECT month, loss_reason_id, loss_reason_name, deals_lost, amount_lost,
       CAST(deals_lost AS DOUBLE) / CAST(sum(deals_lost) OVER (PARTITION BY month) AS DOUBLE) AS share
FROM totals
