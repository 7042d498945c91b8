-- kpi.satisfaction: feedback responses per local month and manager, and the score as a
-- fraction of the maximum.
SELECT CAST(date_trunc('month', CAST(local_date(created_at, ${tz}) AS TIMESTAMP)) AS DATE) AS month,
       manager_id,
       count(*) AS responses,
       sum(score) / NULLIF(sum(max_score), 0) AS avg_score_pct
FROM crm.feedback
GROUP BY 1, 2
