//! The OpenAPI 3.1 document of the endpoints authgate serves (`api/openapi.yaml`), built
//! into the binary and served as JSON at `GET /openapi.json` when `[server] openapi =
//! true`. CI checks the running gateway against it with schemathesis.

use serde_json::Value;

/// The document's source, as kept in the repository.
pub const SOURCE: &str = include_str!("../api/openapi.yaml");

/// The document as JSON.
pub fn document() -> Result<Value, serde_yaml::Error> {
    serde_yaml::from_str(SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::router::{Endpoint, OPENAPI_PATH};

    #[test]
    fn the_document_is_openapi_3_1_and_names_every_endpoint() {
        let doc = document().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let served = [
            "/register",
            "/login",
            "/logout",
            "/logout/all",
            "/refresh",
            "/auth/verify",
            "/me",
            "/password",
            "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server",
            OPENAPI_PATH,
            "/metrics",
            "/healthz",
            "/readyz",
        ];
        for path in served {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        // Every endpoint of the router is among them (a new one must be documented).
        assert_eq!(Endpoint::ALL.len() + 3, served.len());
    }
}
