-- SaaSResto (runbook 000): Prisma's tables, quoted mixed-case names as `prisma migrate` creates them.
CREATE TABLE "User" (
    "id" SERIAL PRIMARY KEY,
    "email" TEXT NOT NULL UNIQUE,
    "role" TEXT NOT NULL DEFAULT 'staff',
    "passwordHash" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "lastLoginAt" TIMESTAMPTZ
);
CREATE TABLE "Session" (
    "id" SERIAL PRIMARY KEY,
    "userId" INTEGER NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "tokenHash" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "expiresAt" TIMESTAMPTZ NOT NULL
);
CREATE INDEX "Session_expiresAt_idx" ON "Session" ("expiresAt");
CREATE TABLE "Menu" (
    "id" SERIAL PRIMARY KEY,
    "name" TEXT NOT NULL
);
CREATE TABLE "Category" (
    "id" SERIAL PRIMARY KEY,
    "menuId" INTEGER NOT NULL REFERENCES "Menu" ("id"),
    "name" TEXT NOT NULL
);
CREATE TABLE "Item" (
    "id" SERIAL PRIMARY KEY,
    "categoryId" INTEGER NOT NULL REFERENCES "Category" ("id"),
    "name" TEXT NOT NULL,
    "priceCents" INTEGER NOT NULL CHECK ("priceCents" >= 0)
);
