-- Cost per connector (issue 17). Every usage row names the connector that did the work
-- (`self_hosted`, voxfleet's own workers, costs 0) and carries its estimated cost in US
-- dollars, computed when the row is written from the unit price in the price table then
-- (`/v1/settings/prices`): a later price change does not rewrite what was already spent.
-- Rows written before this migration were all voxfleet's own work: self_hosted, cost 0.
ALTER TABLE usage_records
    ADD COLUMN connector      text             NOT NULL DEFAULT 'self_hosted',
    -- US dollars per audio minute when the row was written.
    ADD COLUMN unit_price_usd double precision NOT NULL DEFAULT 0 CHECK (unit_price_usd >= 0),
    ADD COLUMN cost_usd       double precision NOT NULL DEFAULT 0 CHECK (cost_usd >= 0);

-- LLM rows: the unit price (US dollars per million tokens) is fixed at reservation; the cost
-- follows the committed count.
ALTER TABLE llm_usage
    ADD COLUMN connector      text             NOT NULL DEFAULT 'self_hosted',
    ADD COLUMN unit_price_usd double precision NOT NULL DEFAULT 0 CHECK (unit_price_usd >= 0),
    ADD COLUMN cost_usd       double precision NOT NULL DEFAULT 0 CHECK (cost_usd >= 0);

-- Monthly sums across all users (`/v1/stats`).
CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX llm_usage_at ON llm_usage (at);
