//! What every handler shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::ServiceConfig;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<ServiceConfig>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(pool: PgPool, config: ServiceConfig) -> AppState {
        AppState { pool, config: Arc::new(config), metrics: Arc::new(Metrics::default()) }
    }
}
