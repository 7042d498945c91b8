-- kpi.closed_deals: every won or lost deal with its local closing date, client, first-sale
-- flag and cycle; the light base of the sales views (no touches, no working time).
-- A won deal is the client's first sale when the client has no won deal closed earlier
-- (ties: lower deal_id first).
WITH firsts AS (
    SELECT deal_id,
           row_number() OVER (PARTITION BY coalesce(company_id, contact_id) ORDER BY closed_at, deal_id) AS n
    FROM crm.deals
    WHERE status = 'won' AND coalesce(company_id, contact_id) IS NOT NULL AND closed_at IS NOT NULL
)
SELECT d.deal_id, d.status, d.pipeline_id, d.manager_id, m.department_id, d.source_id, d.loss_reason_id,
       d.amount_base, d.created_at, d.closed_at,
       local_date(d.closed_at, ${tz}) AS closed_day,
       CAST(date_trunc('month', CAST(local_date(d.closed_at, ${tz}) AS TIMESTAMP)) AS DATE) AS closed_month,
       coalesce(d.company_id, d.contact_id) AS client_id,
       coalesce(f.n = 1, false) AS is_first_sale,
       (date_part('epoch', d.closed_at) - date_part('epoch', d.created_at)) / 86400.0 AS cycle_days
FROM crm.deals d
LEFT JOIN crm.managers m ON m.manager_id = d.manager_id
LEFT JOIN firsts f ON f.deal_id = d.deal_id
WHERE d.status IN ('won', 'lost') AND d.closed_at IS NOT NULL
