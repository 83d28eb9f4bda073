-- Daily sales per series with covariates: the training and backtest input
-- of the forecast. One row per (store, sku, date) that has a sales row in
-- the last {{ params.history_days }} days up to the run's date; the
-- forecast fills missing days with zeros and flags them.
SELECT
    s.date,
    s.store,
    s.sku,
    s.category,
    s.department,
    s.units,
    s.price,
    s.on_promo,
    c.holiday IS NOT NULL AS is_holiday
FROM sales AS s
LEFT JOIN calendar AS c ON c.date = s.date
WHERE s.ds > '{{ ds | add_days(-params.history_days) }}'
  AND s.ds <= '{{ ds }}'
