-- Release 2 of SaaSResto: items can be marked unavailable.
ALTER TABLE "Item" ADD COLUMN "available" BOOLEAN NOT NULL DEFAULT true;
