-- SQLite keeps each folder's count of direct items in `folder.item_count`, by triggers on `item`
-- (its 0017). PostgreSQL does not, and keeps counting on read: a kept count is a write to the
-- folder's row in every transaction that writes its items, and that row lock is held to the
-- commit. Writers that lock item rows first and then the folder (a folder PATCH that sets
-- expiry times on its items then updates the folder; a move, whose trigger would then update
-- the folder) deadlock with writers that insert first (the insert's trigger takes the folder)
-- and then update an item the first one holds (an import's metadata upsert): reproduced with two
-- psql sessions, `deadlock detected`. A kept count here needs writes that never lock the folder
-- (per-statement delta rows folded in later) or one lock order for every item writer.
SELECT 1;
