-- voxfleet schema, part 7: who owns a file's storage object.
--
-- An uploaded file's object (`<prefix>/files/<file id>`) belongs to its record: deleting the
-- record deletes it. An object registered by URI was put there by someone else (the platform,
-- the operator); deleting the record leaves it alone unless an admin registered it with
-- `delete_with_file` (then the record owns it). Either way an object is deleted only when no
-- other record still uses it.
ALTER TABLE files ADD COLUMN owns_object boolean NOT NULL DEFAULT true;
-- Rows from before this column: an object whose key is not the upload key of the row's own id
-- was registered.
UPDATE files SET owns_object = false WHERE storage_key NOT LIKE ('%files/' || id::text);
CREATE INDEX files_storage_key ON files (storage_key);
-- Two records never both own one object.
CREATE UNIQUE INDEX files_owned_object ON files (storage_key) WHERE owns_object;
