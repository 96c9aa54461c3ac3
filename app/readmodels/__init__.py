"""Read models: what operators see of the service's topics and tables (trace, replay, reconcile, the
exception ledger). Pure like the domain; shared by the operator jobs (app/ops) and the /ops page
(app/observe), which is why they live in neither."""
