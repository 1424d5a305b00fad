-- Bootstrap token rotation (issue 13, item 5). The VOXFLEET_ADMIN_TOKEN token is flagged
-- `bootstrap`; on start the control plane makes the presented token the one active bootstrap
-- token and revokes the others. `revoked_at` is set once and never cleared.
ALTER TABLE api_tokens ADD COLUMN bootstrap boolean NOT NULL DEFAULT false;

-- Rows the earlier bootstrap created (it named them so and gave them super_admin).
UPDATE api_tokens SET bootstrap = true WHERE name = 'bootstrap' AND role = 'super_admin';
