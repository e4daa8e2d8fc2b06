use gatehouse_config::{Diagnostic, overlay};
use serde_json::Map;

use crate::import_export::path_of;
use crate::state::{
    ChangeError, ConsoleRoute, FieldError, State, check_setting_keys, field_errors,
};

#[test]
fn diagnostics_land_on_their_field() {
    let mark = overlay::route_mark("ab12", "to");
    let errors = field_errors(&[
        Diagnostic::error(mark, "invalid `to` URL"),
        Diagnostic::error(overlay::route_mark("ab12", ""), "route has no `from`"),
        Diagnostic::warning(overlay::route_mark("ab12", "x"), "only a warning"),
        Diagnostic::error(
            gatehouse_config::Mark {
                origin: "config.yaml".into(),
                line: 3,
                col: 5,
            },
            "bad",
        ),
    ]);
    assert_eq!(
        errors,
        vec![
            FieldError {
                field: "to".into(),
                message: "invalid `to` URL".into()
            },
            FieldError {
                field: "".into(),
                message: "route has no `from`".into()
            },
            FieldError {
                field: "".into(),
                message: "config.yaml:3:5: bad".into()
            },
        ]
    );
}

#[test]
fn settings_outside_the_live_ones_are_refused_by_name() {
    let settings = serde_json::json!({"cookie_expire": "1h", "address": ":1"});
    match check_setting_keys(settings.as_object().unwrap()) {
        Err(ChangeError::Invalid(e)) => {
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].field, "address");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn state_round_trips_with_ids_beside_route_keys() {
    let state = State {
        routes: vec![ConsoleRoute {
            id: "abc".into(),
            options:
                serde_json::json!({"from": "https://a.localhost", "to": ["http://127.0.0.1:1"]})
                    .as_object()
                    .unwrap()
                    .clone(),
        }],
        settings: Map::new(),
    };
    let text = serde_json::to_string(&state).unwrap();
    assert!(
        text.contains(r#"{"id":"abc","from":"https://a.localhost""#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<State>(&text).unwrap(), state);
    assert_eq!(
        path_of(serde_json::json!({"prefix": "/api"}).as_object().unwrap()),
        " prefix /api"
    );
}
