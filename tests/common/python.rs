//! The Python interpreter the tests drive (PyJWT, the `h2` library, grpcio): the
//! virtualenv `.ci/venv`, or `AUTHGATE_TEST_PYTHON`.

use std::path::PathBuf;

pub fn python() -> PathBuf {
    let path = std::env::var_os("AUTHGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: create it with `python3 -m venv .ci/venv && .ci/venv/bin/pip install \
         -r .ci/requirements.txt` (as .ci/run does), or set AUTHGATE_TEST_PYTHON",
        path.display()
    );
    path
}
