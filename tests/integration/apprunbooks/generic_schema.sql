-- SPDX-License-Identifier: GPL-3.0-or-later
-- The generic schema the roles' defaults name (users, sessions, menus/categories/items): the local-cluster
-- tests use it; the lab twins have their apps' own schemas (lab/app/twins).
CREATE TABLE IF NOT EXISTS users (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);
CREATE TABLE IF NOT EXISTS sessions (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires_at_idx ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS menus (
    id   bigserial PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS categories (
    id      bigserial PRIMARY KEY,
    menu_id bigint NOT NULL REFERENCES menus (id),
    name    text NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id          bigserial PRIMARY KEY,
    category_id bigint NOT NULL REFERENCES categories (id),
    name        text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0)
);
