-- SME Booking (runbook 002): Prisma models booking, customer (mapped lower-case) and "CalendarSyncLog".
CREATE TABLE customer (
    id SERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    phone TEXT,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE booking (
    id SERIAL PRIMARY KEY,
    "customerId" INTEGER NOT NULL REFERENCES customer (id),
    "startsAt" TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'confirmed',
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE "CalendarSyncLog" (
    id SERIAL PRIMARY KEY,
    "bookingId" INTEGER REFERENCES booking (id),
    status TEXT NOT NULL,
    error TEXT,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO customer (email, phone) SELECT 'customer' || g || '@lab.example', '+3460000' || lpad(g::text, 4, '0') FROM generate_series(1, 300) AS g;
INSERT INTO booking ("customerId", "startsAt") SELECT 1 + (g % 300), now() + (g || ' hours')::interval FROM generate_series(1, 1200) AS g;
INSERT INTO "CalendarSyncLog" ("bookingId", status) SELECT g, 'ok' FROM generate_series(1, 1200) AS g;
