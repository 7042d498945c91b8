-- kpi.sales_by_period: won and lost deals by local day, ISO week (its Monday) and month
-- (its first day) of closed_at.
WITH closed AS (
    SELECT closed_day AS d, status, amount_base, is_first_sale, client_id
    FROM kpi.closed_deals
),
kinds AS (
    SELECT 'day' AS period_kind UNION ALL SELECT 'week' UNION ALL SELECT 'month'
),
periods AS (
    SELECT k.period_kind,
           CASE k.period_kind
               WHEN 'day' THEN c.d
               WHEN 'week' THEN CAST(date_trunc('week', CAST(c.d AS TIMESTAMP)) AS DATE)
               ELSE CAST(date_trunc('month', CAST(c.d AS TIMESTAMP)) AS DATE)
           END AS period,
           c.status, c.amount_base, c.is_first_sale, c.client_id
    FROM closed c CROSS JOIN kinds k
),
totals AS (
    SELECT period_kind, period,
           coalesce(sum(CASE WHEN status = 'won' THEN amount_base END), 0) AS revenue,
           count(CASE WHEN status = 'won' THEN 1 END) AS deals_won,
           coalesce(sum(CASE WHEN status = 'won' AND is_first_sale THEN amount_base END), 0) AS new_client_revenue,
           coalesce(sum(CASE WHEN status = 'won' AND client_id IS NOT NULL AND NOT is_first_sale THEN amount_base END), 0) AS repeat_client_revenue,
           count(CASE WHEN status = 'won' AND is_first_sale THEN 1 END) AS new_clients,
           count(CASE WHEN status = 'lost' THEN 1 END) AS deals_lost
    FROM periods
    GROUP BY period_kind, period
)
SELECT period_kind, period, revenue, deals_won,
       revenue / CAST(NULLIF(deals_won, 0) AS DECIMAL(20, 0)) AS avg_check,
       new_client_revenue, repeat_client_revenue, new_clients, deals_lost
FROM totals
