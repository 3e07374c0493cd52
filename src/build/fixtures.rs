//! The build's data-driven check: `fixtures/build` through the one fixture runner
//! (`crate::fixtures`, which describes the steps).

#[test]
fn build_fixtures() {
    crate::fixtures::check("build");
}
