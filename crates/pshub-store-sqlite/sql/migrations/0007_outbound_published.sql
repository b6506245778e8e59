-- The outbound stream read by the time its events were published: the bus's relay reads a
-- window back from its cursor, since ids reserved by several processes commit out of order.
CREATE INDEX outbound_published ON outbound (published_at, id);
