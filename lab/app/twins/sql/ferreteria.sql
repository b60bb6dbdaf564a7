-- Ferreteria (runbook 003): the Flask app's tenants and sales.
CREATE TABLE tenant (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE sale (
    id SERIAL PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenant (id),
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO tenant (name) SELECT 'Ferreteria ' || g FROM generate_series(1, 12) AS g;
INSERT INTO sale (tenant_id, total_cents, created_at) SELECT 1 + (g % 12), 100 + (g * 53) % 90000, now() - (g || ' minutes')::interval FROM generate_series(1, 3000) AS g;
