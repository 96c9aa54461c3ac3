-- A Salesforce-like CRM in PostgreSQL: the source the local CDC platform (`platform up --with-cdc`)
-- captures with Debezium. Column names follow the service's mappings (app/mappings/crm/*.toml);
-- types are what a CRM team would choose, not what suits the service: NOT NULL where the CRM
-- insists, timestamptz (PostgreSQL's recommended type) beside a plain timestamp, numeric money.
-- ERP-owned columns (erp_*, *_status, amount_invoiced, amount_paid, credit_hold, disputed) are
-- written back by `crm-erp-sync crm-writer` from crm.commands.update, as the integration user.
-- Idempotent: `platform up --with-cdc` runs it at every start.

CREATE TABLE IF NOT EXISTS account (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    erp_customer_number   text,
    billing_street        text,
    billing_city          text,
    billing_postal_code   text,
    billing_country       text,
    shipping_street       text,
    shipping_city         text,
    shipping_postal_code  text,
    shipping_country      text,
    phone                 text,
    website               text,
    industry              text,
    annual_revenue        numeric(18, 2),
    payment_terms         text NOT NULL DEFAULT 'NET30',
    tax_exempt            boolean NOT NULL DEFAULT false,
    tax_code              text,
    credit_status         text,
    credit_hold           boolean,
    last_modified_by_id   text NOT NULL,
    last_modified_date    timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

-- Added later (a CRM evolves its schema while CDC runs): the ERP's credit limit and customer status,
-- written back with the customer link, and the merge marker the CRM sets on an account it removes.
ALTER TABLE account ADD COLUMN IF NOT EXISTS credit_limit numeric(18, 2);
ALTER TABLE account ADD COLUMN IF NOT EXISTS erp_customer_status text;
ALTER TABLE account ADD COLUMN IF NOT EXISTS master_record_id text;

CREATE TABLE IF NOT EXISTS contact (
    id          text PRIMARY KEY,
    account_id  text REFERENCES account (id),
    first_name  text,
    last_name   text NOT NULL,
    email       text,
    phone       text
);

CREATE TABLE IF NOT EXISTS product (
    id                        text PRIMARY KEY,
    product_code              text NOT NULL,
    name                      text NOT NULL,
    erp_item_code             text,
    is_active                 boolean NOT NULL DEFAULT true,
    quantity_unit_of_measure  text
);

CREATE TABLE IF NOT EXISTS pricebook_entry (
    id                 text PRIMARY KEY,
    pricebook_id       text NOT NULL,
    product_id         text NOT NULL REFERENCES product (id),
    currency_iso_code  char(3) NOT NULL,
    unit_price         numeric(18, 2) NOT NULL,
    is_active          boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS opportunity (
    id                    text PRIMARY KEY,
    account_id            text REFERENCES account (id),
    name                  text NOT NULL,
    description           text,
    stage_name            text NOT NULL,
    amount                numeric(18, 2),
    currency_iso_code     char(3) NOT NULL DEFAULT 'EUR',
    close_date            date NOT NULL,
    probability           numeric(5, 2),
    payment_terms         text,
    billing_schedule      text,
    tax_code              text,
    tax_exempt            boolean,
    billing_street        text,
    billing_city          text,
    billing_postal_code   text,
    billing_country       text,
    shipping_street       text,
    shipping_city         text,
    shipping_postal_code  text,
    shipping_country      text,
    contract_term_months  integer,
    is_deleted            boolean NOT NULL DEFAULT false,
    erp_order_number      text,
    order_status          text,
    fulfilment_status     text,
    invoice_status        text,
    payment_status        text,
    amount_invoiced       numeric(18, 2),
    amount_paid           numeric(18, 2),
    disputed              boolean,
    created_date          timestamptz NOT NULL DEFAULT now(),
    last_modified_by_id   text NOT NULL,
    last_modified_date    timestamptz NOT NULL DEFAULT now()
);

-- Added later: the order's milestones (service activation, customer acceptance), written back by the service.
ALTER TABLE opportunity ADD COLUMN IF NOT EXISTS service_activated_at timestamptz;
ALTER TABLE opportunity ADD COLUMN IF NOT EXISTS customer_accepted_at timestamptz;
-- and the contract a renewal opportunity renews (set when crm-writer creates it from crm.commands.renewal)
ALTER TABLE opportunity ADD COLUMN IF NOT EXISTS renewal_of text;

CREATE TABLE IF NOT EXISTS opportunity_line_item (
    id              text PRIMARY KEY,
    opportunity_id  text NOT NULL REFERENCES opportunity (id) ON DELETE CASCADE,
    product_id      text NOT NULL REFERENCES product (id),
    quantity        numeric(18, 4) NOT NULL,
    list_price      numeric(18, 2),
    unit_price      numeric(18, 2) NOT NULL,
    discount        numeric(5, 2),
    total_price     numeric(18, 2),
    service_date    date,
    end_date        date
);

-- Debezium reads through this publication (publication.autocreate.mode=disabled: the connector's
-- user needs no CREATE rights on the database).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'crm_cdc') THEN
        CREATE PUBLICATION crm_cdc FOR TABLE account, contact, product, pricebook_entry, opportunity,
            opportunity_line_item;
    END IF;
END $$;
