CREATE TABLE inventory_stock (
	id SERIAL NOT NULL,
	stock_type VARCHAR(16) NOT NULL,
	quantity INTEGER NOT NULL,
	deleted_at TIMESTAMP WITHOUT TIME ZONE,
	PRIMARY KEY (id)
);

CREATE TABLE sprinkler_spare_pieces (
	id SERIAL NOT NULL,
	stock_id INTEGER NOT NULL,
	piece_count INTEGER NOT NULL,
	status VARCHAR(16) NOT NULL,
	deleted_at TIMESTAMP WITHOUT TIME ZONE,
	PRIMARY KEY (id)
);

CREATE INDEX ix_sprinkler_spare_pieces_stock_id ON sprinkler_spare_pieces (stock_id);
