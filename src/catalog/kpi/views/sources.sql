-- kpi.sources: leads and deals created, deals won and revenue per local month and source.
WITH events AS (
    SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month,
           source_id, 1 AS lead, 0 AS deal, 0 AS won, CAST(NULL AS DECIMAL(18, 2)) AS amount
    FROM crm.leads
    UNION ALL
    SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE),
           source_id, 0, 1, 0, NULL
    FROM crm.deals
    UNION ALL
    SELECT closed_month, source_id, 0, 0, 1, amount_base
    FROM kpi.closed_deals WHERE status = 'won'
),
named AS (
    SELECT e.month, e.source_id, s.name AS source_name, s.channel, e.lead, e.deal, e.won, e.amount
    FROM events e LEFT JOIN crm.sources s ON s.source_id = e.source_id
),
totals AS (
    SELECT month, source_id, source_name, channel,
           CAST(sum(lead) AS BIGINT) AS leads, CAST(sum(deal) AS BIGINT) AS deals, CAST(sum(won) AS BIGINT) AS deals_won,
           coalesce(sum(amount), 0) AS revenue
    FROM named GROUP BY month, source_id, source_name, channel
)
SELECT month, source_id, source_name, channel, leads, deals, deals_won, revenue,
       CAST(deals_won AS DOUBLE) / NULLIF(CAST(leads AS DOUBLE), 0) AS lead_to_sale
FROM totals
