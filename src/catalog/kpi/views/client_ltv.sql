-- kpi.client_ltv: per client (company, else contact) with a won deal: first and last sale,
-- deals won, revenue and average check.
WITH totals AS (
    SELECT client_id, min(closed_at) AS first_sale_at, count(*) AS deals_won,
           coalesce(sum(amount_base), 0) AS revenue, max(closed_at) AS last_sale_at
    FROM kpi.closed_deals
    WHERE status = 'won' AND client_id IS NOT NULL
    GROUP BY client_id
)
SELECT client_id, first_sale_at, deals_won, revenue,
       revenue / CAST(NULLIF(deals_won, 0) AS DECIMAL(20, 0)) AS avg_check, last_sale_at
FROM totals
