-- kpi.pipeline_now: open deals and their potential by pipeline, stage and manager, as of
-- the snapshot.
SELECT pipeline_id, stage_id, manager_id,
       count(*) AS open_deals,
       coalesce(sum(amount_base), 0) AS potential_amount
FROM crm.deals
WHERE status = 'open'
GROUP BY pipeline_id, stage_id, manager_id
