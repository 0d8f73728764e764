//! Pagination shared by every list.

use serde::Serialize;

/// The largest page number and page size a list serves.
pub const MAX_PAGE: i64 = 1_000_000;
pub const MAX_PAGE_SIZE: i64 = 200;

/// A page request: 1-based page, bounded size.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: i64,
    pub page_size: i64,
}

impl PageRequest {
    /// Clamps to 1 ≤ page ≤ [`MAX_PAGE`] and 1 ≤ size ≤ [`MAX_PAGE_SIZE`] (default 20).
    pub fn new(page: Option<i64>, page_size: Option<i64>) -> Self {
        PageRequest { page: page.unwrap_or(1).clamp(1, MAX_PAGE), page_size: page_size.unwrap_or(20).clamp(1, MAX_PAGE_SIZE) }
    }
    /// SQL OFFSET.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.page_size
    }
}

/// A page of results, shaped like the seed's `{list, total}`.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub list: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
}
