"""crm-erp-sync: keeps a CRM and an ERP in one coordinated opportunity-to-cash lifecycle."""
