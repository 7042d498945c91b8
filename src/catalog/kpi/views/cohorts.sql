-- kpi.cohorts: clients by the local month of their first sale, and how many of them buy
-- again in each later month, up to the snapshot's month (zeros included).
WITH sales AS (
    SELECT client_id, is_first_sale, amount_base, closed_month AS month
    FROM kpi.closed_deals
    WHERE status = 'won' AND client_id IS NOT NULL
),
members AS (
    SELECT client_id, month AS cohort_month FROM sales WHERE is_first_sale
),
sizes AS (
    SELECT cohort_month, count(*) AS cohort_size FROM members GROUP BY cohort_month
),
last_month AS (
    SELECT CAST(date_trunc('month', CAST(local_date(${taken_at}, ${tz}) AS TIMESTAMP)) AS DATE) AS m
),
numbers AS (
    SELECT CAST(unnest(range(0, 1200)) AS BIGINT) AS month_offset
),
offsets AS (
    SELECT s.cohort_month, s.cohort_size, n.month_offset
    FROM sizes s CROSS JOIN last_month l
    JOIN numbers n
      ON n.month_offset <= CAST((date_part('year', l.m) - date_part('year', s.cohort_month)) * 12
                                + date_part('month', l.m) - date_part('month', s.cohort_month) AS BIGINT)
),
activity AS (
    SELECT mb.cohort_month,
           CAST((date_part('year', sa.month) - date_part('year', mb.cohort_month)) * 12
                + date_part('month', sa.month) - date_part('month', mb.cohort_month) AS BIGINT) AS month_offset,
           count(DISTINCT sa.client_id) AS active_clients,
           sum(sa.amount_base) AS revenue
    FROM members mb JOIN sales sa ON sa.client_id = mb.client_id
    GROUP BY 1, 2
)
SELECT o.cohort_month, o.month_offset, o.cohort_size,
       coalesce(a.active_clients, 0) AS active_clients,
       coalesce(a.revenue, 0) AS revenue,
       CAST(coalesce(a.active_clients, 0) AS DOUBLE) / CAST(o.cohort_size AS DOUBLE) AS retention
FROM offsets o
LEFT JOIN activity a ON a.cohort_month = o.cohort_month AND a.month_offset = o.month_offset
