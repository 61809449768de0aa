CREATE TABLE inventory_product (
	id SERIAL NOT NULL,
	name VARCHAR(100) NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE inventory_stockproduct (
	id SERIAL NOT NULL,
	product_id INTEGER NOT NULL,
	quantity INTEGER NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE inventory_storefrontinventory (
	id SERIAL NOT NULL,
	storefront_id INTEGER NOT NULL,
	product_id INTEGER NOT NULL,
	quantity INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (storefront_id, product_id)
);

CREATE TABLE inventory_transferrequest (
	id SERIAL NOT NULL,
	storefront_id INTEGER NOT NULL,
	status VARCHAR(16) NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE inventory_transferrequestlineitem (
	id SERIAL NOT NULL,
	request_id INTEGER NOT NULL,
	product_id INTEGER NOT NULL,
	requested_quantity INTEGER NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_inventory_transferrequestlineitem_request_id ON inventory_transferrequestlineitem (request_id);
