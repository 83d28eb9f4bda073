//! The `empty` kind: a no-op join point (Airflow's EmptyOperator).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};

pub struct EmptyKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptySpec {}

#[derive(Debug)]
struct EmptyRunner;

impl TaskKind for EmptyKind {
    fn name(&self) -> &'static str {
        "empty"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        cx.deserialize::<EmptySpec>(spec)?;
        Some(Arc::new(EmptyRunner))
    }
}

#[async_trait]
impl TaskRunner for EmptyRunner {
    async fn run(&self, _cx: &AttemptContext) -> Result<Outputs, TaskError> {
        Ok(Outputs::new())
    }
}
