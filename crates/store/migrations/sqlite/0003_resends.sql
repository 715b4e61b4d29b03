-- Resends and replays of a delivery, for the log's links between them (the console's delivery page).
CREATE INDEX deliveries_resent_from ON deliveries(resent_from) WHERE resent_from IS NOT NULL;
