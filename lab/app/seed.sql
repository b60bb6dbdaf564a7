-- SPDX-License-Identifier: GPL-3.0-or-later
-- Lab seed data: 500 users (one shared bcrypt hash of the lab password), sessions
-- (a third expired), 5 menus, 40 categories, 2000 items. Deterministic, so row counts are known.
INSERT INTO users (email, password_hash, created_at)
SELECT 'user' || g || '@lab.example', :'lab_hash', now() - (g || ' hours')::interval
FROM generate_series(1, 500) AS g;
INSERT INTO sessions (user_id, token_hash, created_at, expires_at)
SELECT 1 + (g % 500), md5('session' || g), now() - (g || ' minutes')::interval,
       CASE WHEN g % 3 = 0 THEN now() - interval '2 days' ELSE now() + interval '7 days' END
FROM generate_series(1, 1500) AS g;
INSERT INTO menus (name) SELECT 'Menu ' || g FROM generate_series(1, 5) AS g;
INSERT INTO categories (menu_id, name) SELECT 1 + (g % 5), 'Category ' || g FROM generate_series(1, 40) AS g;
INSERT INTO items (category_id, name, price_cents)
SELECT 1 + (g % 40), 'Item ' || g, 100 + (g * 37) % 5000 FROM generate_series(1, 2000) AS g;
ANALYZE;
