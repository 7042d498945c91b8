-- kpi.abc_clients: clients ranked by revenue (ties: lower client_id first) with their share,
-- the cumulative share and the ABC class by abc.a_share / abc.b_share of the revenue of
-- the clients ranked before them.
WITH revenue AS (
    SELECT client_id, sum(amount_base) AS revenue
    FROM kpi.closed_deals
    WHERE status = 'won' AND client_id IS NOT NULL
    GROUP BY client_id
),
ranked AS (
    SELECT client_id, revenue,
           sum(revenue) OVER (ORDER BY revenue DESC, client_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
           sum(revenue) OVER () AS total
    FROM revenue
)
SELECT client_id, revenue,
       CAST(revenue AS DOUBLE) / NULLIF(CAST(total AS DOUBLE), 0) AS share,
       CAST(running AS DOUBLE) / NULLIF(CAST(total AS DOUBLE), 0) AS cumulative_share,
       CASE
           WHEN (running - revenue) < total * CAST(${abc.a_share} AS DECIMAL(10, 4)) THEN 'A'
           WHEN (running - revenue) < total * CAST(${abc.b_share} AS DECIMAL(10, 4)) THEN 'B'
           ELSE 'C'
       END AS abc_class
FROM ranked
