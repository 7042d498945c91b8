-- kpi.channels: leads created (by the lead's source) and deals won (by the deal's source)
-- per local month and channel.
WITH events AS (
    SELECT CAST(date_trunc('month', CAST(local_date(l.created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month,
           s.channel, s.is_online, 1 AS lead, 0 AS won, CAST(NULL AS DECIMAL(18, 2)) AS amount
    FROM crm.leads l LEFT JOIN crm.sources s ON s.source_id = l.source_id
    UNION ALL
    SELECT d.closed_month, s.channel, s.is_online, 0, 1, d.amount_base
    FROM kpi.closed_deals d LEFT JOIN crm.sources s ON s.source_id = d.source_id
    WHERE d.status = 'won'
),
totals AS (
    SELECT month, channel, is_online, sum(lead) AS leads, sum(won) AS deals_won, coalesce(sum(amount), 0) AS revenue
    FROM events GROUP BY month, channel, is_online
)
SELECT month, channel, is_online, CAST(leads AS BIGINT) AS leads, CAST(deals_won AS BIGINT) AS deals_won, revenue,
       revenue / CAST(NULLIF(deals_won, 0) AS DECIMAL(20, 0)) AS avg_check
FROM totals
