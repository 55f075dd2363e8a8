"""ServiceNow: change requests and incidents pushed to /integrations/servicenow/ or pulled
over the Table API."""
