-- kpi.manager_weekday: won revenue and deals per manager and ISO weekday (1 = Monday) of
-- the local closing date.
SELECT manager_id,
       CAST((CAST(date_part('dow', local_date(closed_at, ${tz})) AS BIGINT) + 6) % 7 + 1 AS BIGINT) AS weekday,
       coalesce(sum(amount_base), 0) AS revenue,
       count(*) AS deals_won
FROM crm.deals
WHERE status = 'won' AND closed_at IS NOT NULL
GROUP BY 1, 2
