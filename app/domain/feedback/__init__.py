"""ERP feedback: what the ERP reports about an order, folded into the deal and told to the CRM."""
