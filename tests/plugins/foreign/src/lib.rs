//! A component of another world (not a mafalda plugin): the host must refuse it clearly.

wit_bindgen::generate!({
    inline: r#"
        package other:thing@1.0.0;
        world greeter {
            export greet: func(name: string) -> string;
        }
    "#,
});

#[allow(dead_code)]
struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

#[cfg(target_arch = "wasm32")]
export!(Greeter);
