//! The planning tables' columns as types: what the `monitor` kind writes
//! (`anomalies`) and the `reorder` kind writes (`plans`), and the fixed
//! columns of the `forecast` kind's table (`forecasts`). The writers build
//! their Arrow schema from these lists and the readers (the `email` kind)
//! name columns through them, so a renamed or retyped column is one edit
//! that both sides see, not two strings that drift apart.
//!
//! Owns names, types and nullability; not the values (the kinds build
//! those) nor how a table is found in the lake (`tables.rs`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// One column of a planning table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub data_type: DataType,
    pub nullable: bool,
}

impl Column {
    const fn new(name: &'static str, data_type: DataType, nullable: bool) -> Self {
        Self {
            name,
            data_type,
            nullable,
        }
    }

    pub fn field(&self) -> Field {
        Field::new(self.name, self.data_type.clone(), self.nullable)
    }
}

/// The Arrow schema of `columns`, in their order.
pub fn schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(Column::field).collect::<Vec<_>>(),
    ))
}

/// The series key as the planning tables write it: `reorder` and
/// `monitor` rename the lake's key columns to these (`series_key:`), and
/// the default forecast key has them.
pub mod series {
    use super::Column;
    use arrow::datatypes::DataType::Utf8;

    pub const STORE: Column = Column::new("store", Utf8, false);
    pub const SKU: Column = Column::new("sku", Utf8, false);
}

/// The `monitor` kind's output: one row per anomaly, in worklist order.
pub mod anomalies {
    use super::Column;
    use arrow::datatypes::DataType::{Boolean, Date32, Float64, Int64, Utf8};

    pub const DATE: Column = Column::new("date", Date32, false);
    /// Null for store-wide anomalies.
    pub const STORE: Column = Column::new("store", Utf8, true);
    /// Null for store-wide anomalies (`stale_data`).
    pub const SKU: Column = Column::new("sku", Utf8, true);
    pub const TYPE: Column = Column::new("type", Utf8, false);
    pub const SEVERITY: Column = Column::new("severity", Utf8, false);
    pub const OBSERVED: Column = Column::new("observed", Float64, false);
    pub const EXPECTED: Column = Column::new("expected", Float64, false);
    pub const MESSAGE: Column = Column::new("message", Utf8, false);
    pub const REASON: Column = Column::new("reason", Utf8, false);
    pub const MONEY_AT_RISK: Column = Column::new("money_at_risk", Float64, false);
    pub const MONEY_KIND: Column = Column::new("money_kind", Utf8, false);
    /// `new`, `recurring` or `worse`.
    pub const STATUS: Column = Column::new("status", Utf8, false);
    pub const FIRST_SEEN: Column = Column::new("first_seen", Date32, false);
    pub const RANK: Column = Column::new("rank", Int64, false);
    pub const HEADLINE: Column = Column::new("headline", Boolean, false);

    /// Every column, in the order the monitor writes them.
    pub const ALL: [Column; 15] = [
        DATE,
        STORE,
        SKU,
        TYPE,
        SEVERITY,
        OBSERVED,
        EXPECTED,
        MESSAGE,
        REASON,
        MONEY_AT_RISK,
        MONEY_KIND,
        STATUS,
        FIRST_SEEN,
        RANK,
        HEADLINE,
    ];
}

/// The `reorder` kind's output: one plan line per series.
pub mod plans {
    use super::Column;
    use arrow::datatypes::DataType::{Boolean, Date32, Float64, Int64, Utf8};

    pub const PLAN_DATE: Column = Column::new("plan_date", Date32, false);
    pub const STORE: Column = Column::new("store", Utf8, false);
    pub const SKU: Column = Column::new("sku", Utf8, false);
    pub const POLICY: Column = Column::new("policy", Utf8, false);
    pub const ON_HAND: Column = Column::new("on_hand", Float64, false);
    pub const ON_ORDER: Column = Column::new("on_order", Float64, false);
    pub const INVENTORY_POSITION: Column = Column::new("inventory_position", Float64, false);
    pub const DAILY_DEMAND: Column = Column::new("daily_demand", Float64, false);
    pub const LEAD_TIME_DAYS: Column = Column::new("lead_time_days", Float64, false);
    pub const REVIEW_PERIOD_DAYS: Column = Column::new("review_period_days", Float64, false);
    pub const SERVICE_LEVEL: Column = Column::new("service_level", Float64, false);
    pub const PROTECTION_DAYS: Column = Column::new("protection_days", Float64, false);
    pub const DEMAND_MEAN: Column = Column::new("demand_mean", Float64, false);
    pub const DEMAND_SD: Column = Column::new("demand_sd", Float64, false);
    pub const SAFETY_STOCK: Column = Column::new("safety_stock", Float64, false);
    pub const REORDER_POINT: Column = Column::new("reorder_point", Float64, false);
    pub const ORDER_UP_TO: Column = Column::new("order_up_to", Float64, false);
    pub const EOQ: Column = Column::new("eoq", Float64, true);
    pub const ORDER_QTY: Column = Column::new("order_qty", Int64, false);
    pub const UNIT_COST: Column = Column::new("unit_cost", Float64, false);
    pub const ORDER_VALUE: Column = Column::new("order_value", Float64, false);
    pub const ORDER_NEEDED: Column = Column::new("order_needed", Boolean, false);
    pub const ORDER_BY: Column = Column::new("order_by", Date32, true);
    pub const PROJECTED_STOCKOUT: Column = Column::new("projected_stockout", Date32, true);
    pub const DAYS_OF_COVER: Column = Column::new("days_of_cover", Float64, true);
    /// `order`, `no_order` or `held`.
    pub const STATUS: Column = Column::new("status", Utf8, false);
    pub const REASON: Column = Column::new("reason", Utf8, false);
    /// The order value a held line would have had.
    pub const HELD_ORDER_VALUE: Column = Column::new("held_order_value", Float64, true);
    pub const MODEL_KIND: Column = Column::new("model_kind", Utf8, true);
    pub const MODEL_ORDER_QTY: Column = Column::new("model_order_qty", Int64, true);
    pub const OVERRIDE_ID: Column = Column::new("override_id", Utf8, true);

    /// Every column, in the order the reorder kind writes them.
    pub const ALL: [Column; 31] = [
        PLAN_DATE,
        STORE,
        SKU,
        POLICY,
        ON_HAND,
        ON_ORDER,
        INVENTORY_POSITION,
        DAILY_DEMAND,
        LEAD_TIME_DAYS,
        REVIEW_PERIOD_DAYS,
        SERVICE_LEVEL,
        PROTECTION_DAYS,
        DEMAND_MEAN,
        DEMAND_SD,
        SAFETY_STOCK,
        REORDER_POINT,
        ORDER_UP_TO,
        EOQ,
        ORDER_QTY,
        UNIT_COST,
        ORDER_VALUE,
        ORDER_NEEDED,
        ORDER_BY,
        PROJECTED_STOCKOUT,
        DAYS_OF_COVER,
        STATUS,
        REASON,
        HELD_ORDER_VALUE,
        MODEL_KIND,
        MODEL_ORDER_QTY,
        OVERRIDE_ID,
    ];
}

/// The fixed columns of the `forecast` kind's output (besides the series
/// key, whose names are the train task's, and the quantile columns `pNN`,
/// whose levels are its model's; see [`crate::forecast::output::schema`]).
pub mod forecasts {
    use super::Column;
    use arrow::datatypes::DataType::{Date32, Float64, Int32};

    pub const FORECAST_DATE: Column =
        Column::new(crate::forecast::output::FORECAST_DATE, Date32, false);
    pub const STEP: Column = Column::new(crate::forecast::output::STEP, Int32, false);
    pub const MEAN: Column = Column::new("mean", Float64, false);
}
