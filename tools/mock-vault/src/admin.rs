//! The admin API (outside `/v1/`, so it never collides with a Vault path):
//! fault knobs, time warp, revocation and request counts, changed and read
//! at run time by tests and developers.
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /admin/counts` | `{"GET secret/data/app": 2, "POST auth/approle/login": 1}` |
//! | `DELETE /admin/counts` | forget the counts |
//! | `GET /admin/faults` | the fault list in force |
//! | `PUT /admin/faults` `{"faults": [...]}` | replace the list (same fields as the seed's `faults`) |
//! | `POST /admin/faults` `{...}` | add one fault |
//! | `DELETE /admin/faults` | clear every fault |
//! | `POST /admin/fail-next-renew` `{"status": 500}` | the next token or lease renewal fails (default 500) |
//! | `POST /admin/time` `{"advance": "1h"}` | move the mock's clock forward |
//! | `POST /admin/revoke` `{"token": T}` / `{"lease_id": L}` / `{"prefix": P}` / `{"logins": true}` | revoke now |

use serde_json::{json, Map, Value};

use crate::faults::Fault;
use crate::server::{counts, lock, ok, Shared};
use crate::vault::Response;

pub fn handle(shared: &Shared, method: &str, path: &str, body: &Map<String, Value>) -> Response {
    match (method, path) {
        ("GET", "counts") => ok(counts(shared)),
        ("DELETE", "counts") => {
            lock(&shared.counts).clear();
            ok(json!({}))
        }
        ("GET", "faults") => ok(json!({ "faults": *lock(&shared.faults) })),
        ("DELETE", "faults") => {
            lock(&shared.faults).clear();
            ok(json!({ "faults": [] }))
        }
        ("PUT", "faults") => match parse::<Vec<Fault>>(body.get("faults").cloned().unwrap_or(json!([]))) {
            Ok(faults) => {
                *lock(&shared.faults) = faults;
                ok(json!({ "faults": *lock(&shared.faults) }))
            }
            Err(err) => Response::errors(400, &[&err]),
        },
        ("POST", "faults") => match parse::<Fault>(Value::Object(body.clone())) {
            Ok(fault) => {
                lock(&shared.faults).push(fault);
                ok(json!({ "faults": *lock(&shared.faults) }))
            }
            Err(err) => Response::errors(400, &[&err]),
        },
        ("POST", "fail-next-renew") => {
            let status = body.get("status").and_then(Value::as_u64).unwrap_or(500) as u16;
            lock(&shared.faults).push(Fault {
                renew: true,
                error_rate: Some(1.0),
                error_status: status,
                times: Some(1),
                ..Fault::default()
            });
            ok(json!({ "faults": *lock(&shared.faults) }))
        }
        ("POST", "time") => {
            let advance = body.get("advance").cloned().unwrap_or(json!(0));
            match parse::<crate::seed::Ttl>(advance) {
                Ok(by) => {
                    let offset = lock(&shared.vault).advance(by.0);
                    ok(json!({ "offset_seconds": offset.as_secs_f64() }))
                }
                Err(err) => Response::errors(400, &[&format!("advance: {err}")]),
            }
        }
        ("POST", "revoke") => {
            let revoked = lock(&shared.vault).revoke(body);
            ok(json!({ "revoked": revoked }))
        }
        _ => Response::errors(404, &[&format!("no admin route {method} /admin/{path}")]),
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|err| err.to_string())
}
