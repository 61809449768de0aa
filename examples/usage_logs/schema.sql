CREATE TABLE inventory_items (
	id UUID NOT NULL,
	child_id INTEGER NOT NULL,
	quantity_total INTEGER NOT NULL,
	quantity_remaining INTEGER NOT NULL,
	cost_per_unit NUMERIC(10, 4) NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE usage_logs (
	id SERIAL NOT NULL,
	inventory_item_id UUID,
	usage_type VARCHAR(32) NOT NULL,
	quantity_used INTEGER NOT NULL,
	is_deleted BOOLEAN NOT NULL,
	logged_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_usage_logs_item ON usage_logs (inventory_item_id);
