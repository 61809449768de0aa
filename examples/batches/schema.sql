CREATE TABLE batches (
	id SERIAL NOT NULL,
	product_code VARCHAR(32) NOT NULL,
	quantity_remaining INTEGER NOT NULL,
	received_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_batches_product_code ON batches (product_code);

CREATE TABLE warehouse_inventory (
	product_code VARCHAR(32) NOT NULL,
	packs INTEGER NOT NULL,
	pack_price NUMERIC(12, 2) NOT NULL,
	PRIMARY KEY (product_code)
);
