-- SaaSResto seed: 500 users (one bcrypt hash of the lab password), 1500 sessions of which 500 expired,
-- 5 menus, 40 categories, 2000 items. Deterministic, so row counts are known.
INSERT INTO "User" ("email", "role", "passwordHash", "createdAt")
SELECT 'user' || g || '@lab.example', CASE WHEN g = 1 THEN 'admin' ELSE 'staff' END, :'lab_hash', now() - (g || ' hours')::interval
FROM generate_series(1, 500) AS g;
INSERT INTO "Session" ("userId", "tokenHash", "createdAt", "expiresAt")
SELECT 1 + (g % 500), md5('session' || g), now() - (g || ' minutes')::interval,
       CASE WHEN g % 3 = 0 THEN now() - interval '2 days' ELSE now() + interval '7 days' END
FROM generate_series(1, 1500) AS g;
INSERT INTO "Menu" ("name") SELECT 'Menu ' || g FROM generate_series(1, 5) AS g;
INSERT INTO "Category" ("menuId", "name") SELECT 1 + (g % 5), 'Category ' || g FROM generate_series(1, 40) AS g;
INSERT INTO "Item" ("categoryId", "name", "priceCents")
SELECT 1 + (g % 40), 'Item ' || g, 100 + (g * 37) % 5000 FROM generate_series(1, 2000) AS g;
