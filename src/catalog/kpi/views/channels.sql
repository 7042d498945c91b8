-- kpi.channels: leads created (by the lead's source) and deals won (by the deal's source)
-- per local month and channel.
WITH events AS (
    SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month,
           channel, is_online, 1 AS lead, 0 AS won, CAST(NULL AS DECIMAL(18, 2)) AS amount
    FROM kpi.lead_facts
    UNION ALL
    SELECT CAST(date_trunc('month', CAST(local_date(closed_at, ${tz}) AS TIMESTAMP)) AS DATE),
           channel, is_online, 0, 1, amount_base
    FROM kpi.deal_facts WHERE status = 'won' AND closed_at IS NOT NULL
),
totals AS (
    SELECT month, channel, is_online, sum(lead) AS leads, sum(won) AS deals_won, coalesce(sum(amount), 0) AS revenue
    FROM events GROUP BY month, channel, is_online
)
SELECT month, channel, is_online, CAST(leads AS BIGINT) AS leads, CAST(deals_won AS BIGINT) AS deals_won, revenue,
       revenue / CAST(NULLIF(deals_won, 0) AS DECIMAL(20, 0)) AS avg_check
FROM totals
