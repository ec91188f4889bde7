-- SQLite's 0007 drops item_folder_title: there a title listing is served by the partial unique
-- index item_folder_title_unique. PostgreSQL keeps item_folder_title (its planner does not drop
-- `id` from ORDER BY title, id after a unique key), so this version changes nothing here; it
-- keeps the two dialects' migration versions the same.
SELECT 1;
