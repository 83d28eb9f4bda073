-- Products still sold on the run's date, with the replenishment parameters
-- the reorder plan needs.
SELECT
    sku,
    category,
    department,
    unit_cost,
    case_pack,
    moq,
    lead_time_days,
    lead_time_std_days,
    review_period_days,
    service_level,
    launch_date
FROM products
WHERE launch_date <= DATE '{{ ds }}'
  AND (discontinued_date IS NULL OR discontinued_date > DATE '{{ ds }}')
