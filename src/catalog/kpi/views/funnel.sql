-- kpi.funnel: how many deals reached each non-lost stage of their pipeline (through their
-- history or their current stage; a won deal reached every stage), with conversions.
WITH ordered AS (
    SELECT stage_id, pipeline_id, name,
           CAST(row_number() OVER (PARTITION BY pipeline_id ORDER BY sort_order, stage_id) AS BIGINT) AS stage_order
    FROM crm.stages WHERE kind <> 'lost'
),
deepest AS (
    -- The furthest non-lost stage each deal entered or sits in.
    SELECT d.deal_id, d.pipeline_id, d.status, d.amount_base, max(o.stage_order) AS reached
    FROM crm.deals d
    JOIN (SELECT deal_id, stage_id FROM crm.deal_stage_history
          UNION ALL SELECT deal_id, stage_id FROM crm.deals) visits ON visits.deal_id = d.deal_id
    JOIN ordered o ON o.stage_id = visits.stage_id AND o.pipeline_id = d.pipeline_id
    GROUP BY d.deal_id, d.pipeline_id, d.status, d.amount_base
),
tops AS (
    SELECT pipeline_id, max(stage_order) AS top FROM ordered GROUP BY pipeline_id
),
reach AS (
    SELECT o.pipeline_id, o.stage_id, o.name AS stage_name, o.stage_order,
           count(dp.deal_id) AS deals_reached,
           coalesce(sum(dp.amount_base), 0) AS amount_reached
    FROM ordered o
    JOIN tops t ON t.pipeline_id = o.pipeline_id
    LEFT JOIN deepest dp
      ON dp.pipeline_id = o.pipeline_id
     AND (CASE WHEN dp.status = 'won' THEN t.top ELSE dp.reached END) >= o.stage_order
    GROUP BY o.pipeline_id, o.stage_id, o.name, o.stage_order
)
SELECT pipeline_id, stage_id, stage_name, stage_order, deals_reached, amount_reached,
       CAST(deals_reached AS DOUBLE)
         / NULLIF(CAST(lag(deals_reached) OVER (PARTITION BY pipeline_id ORDER BY stage_order) AS DOUBLE), 0) AS conversion_from_prev,
       CAST(deals_reached AS DOUBLE)
         / NULLIF(CAST(first_value(deals_reached) OVER (PARTITION BY pipeline_id ORDER BY stage_order) AS DOUBLE), 0) AS conversion_from_first
FROM reach
