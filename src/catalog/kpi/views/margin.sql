-- kpi.margin: per local month of closing and manager: won revenue, the cost of the won
-- deals' items that have a cost, margin and margin share.
WITH won AS (
    SELECT deal_id, manager_id, amount_base,
           CAST(date_trunc('month', CAST(local_date(closed_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month
    FROM crm.deals WHERE status = 'won' AND closed_at IS NOT NULL
),
costs AS (
    SELECT deal_id, sum(quantity * CAST(cost AS DOUBLE)) AS cost
    FROM crm.deal_items WHERE cost IS NOT NULL GROUP BY deal_id
),
totals AS (
    SELECT w.month, w.manager_id, coalesce(sum(w.amount_base), 0) AS revenue, coalesce(sum(c.cost), 0) AS cost
    FROM won w LEFT JOIN costs c ON c.deal_id = w.deal_id
    GROUP BY w.month, w.manager_id
)
SELECT month, manager_id, revenue, cost,
       CAST(revenue AS DOUBLE) - cost AS margin,
       (CAST(revenue AS DOUBLE) - cost) / NULLIF(CAST(revenue AS DOUBLE), 0) AS margin_pct
FROM totals
