-- CookCam API (runbook 001): the Stripe webhook events table of its Supabase database.
CREATE TABLE stripe_webhook_events (
    id BIGSERIAL PRIMARY KEY,
    stripe_event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    error_message TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at TIMESTAMPTZ
);
CREATE INDEX stripe_webhook_events_status_created_idx ON stripe_webhook_events (status, created_at);
CREATE TABLE recipes (
    id BIGSERIAL PRIMARY KEY,
    user_id UUID NOT NULL,
    title TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO stripe_webhook_events (stripe_event_id, event_type, status, created_at, processed_at)
SELECT 'evt_' || md5(g::text), (ARRAY['payment_intent.succeeded', 'customer.subscription.updated', 'invoice.paid'])[1 + g % 3],
       'processed', now() - (g || ' minutes')::interval, now() - (g || ' minutes')::interval
FROM generate_series(1, 400) AS g;
INSERT INTO recipes (user_id, title) SELECT md5(g::text)::uuid, 'Recipe ' || g FROM generate_series(1, 200) AS g;
