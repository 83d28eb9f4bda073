-- The latest stock snapshot per (store, sku) within two weeks of the run's
-- date. A store whose feed stopped keeps its last known position; the
-- monitor reports the gap as stale data.
SELECT store, sku, on_hand, on_order, date AS snapshot_date
FROM (
    SELECT
        store,
        sku,
        on_hand,
        on_order,
        date,
        ROW_NUMBER() OVER (PARTITION BY store, sku ORDER BY date DESC) AS newest
    FROM inventory
    WHERE ds > '{{ ds | add_days(-14) }}'
      AND ds <= '{{ ds }}'
) AS snapshots
WHERE newest = 1
