-- kpi.pipelines_compare: deals, outcomes, win rate, revenue and cycle per pipeline.
WITH totals AS (
    SELECT pipeline_id,
           count(*) AS deals,
           count(CASE WHEN status = 'won' THEN 1 END) AS deals_won,
           count(CASE WHEN status = 'lost' THEN 1 END) AS deals_lost,
           coalesce(sum(CASE WHEN status = 'won' THEN amount_base END), 0) AS revenue,
           avg(CASE WHEN status = 'won' THEN cycle_days END) AS avg_cycle_days
    FROM (SELECT d.pipeline_id, d.status, d.amount_base, c.cycle_days
          FROM crm.deals d LEFT JOIN kpi.closed_deals c ON c.deal_id = d.deal_id) deals
    GROUP BY pipeline_id
)
SELECT pipeline_id, deals, deals_won, deals_lost,
       CAST(deals_won AS DOUBLE) / NULLIF(CAST(deals_won + deals_lost AS DOUBLE), 0) AS win_rate,
       revenue, avg_cycle_days
FROM totals
