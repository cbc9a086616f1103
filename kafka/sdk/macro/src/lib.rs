//! The attribute macros of `trigger-kafka-sdk`. Each turns a plain function
//! into a component export: it generates the world's bindings in the
//! component (types come from the SDK, so a handler's signature uses
//! `trigger_kafka_sdk::Message`), and maps the function's result to the
//! export's.

use proc_macro::TokenStream;
use quote::quote;

// The WIT of trigger-kafka (`wit` links to `kafka/wit`), embedded when
// this crate is compiled and handed to `generate!` inline: a path would be
// read again in every crate that uses a macro, from wherever this crate
// was first built (a deleted checkout, with a shared target directory).
const MAIN_WIT: &str = include_str!("../wit/kafka-trigger.wit");
const SPIN_WIT: [&str; 3] = [
    include_str!("../wit/deps/spin/sqlite.wit"),
    include_str!("../wit/deps/spin/key-value.wit"),
    include_str!("../wit/deps/spin/variables.wit"),
];
const SQLITE3_WIT: &str = include_str!("../wit/deps/spin-sqlite/sqlite.wit");
const POSTGRES4_WIT: &str = include_str!("../wit/deps/spin-postgres/postgres.wit");
const CRON_WIT: &str = include_str!("../wit/deps/spin-cron/cron.wit");

/// Files of one package as a nested `package a:b@v { … }` block.
fn nested(files: &[&str]) -> String {
    let mut name = None;
    let mut body = String::new();
    for file in files {
        for line in file.lines() {
            match line.trim().strip_prefix("package ") {
                Some(id) if id.ends_with(';') => {
                    name.get_or_insert_with(|| id.trim_end_matches(';').to_owned());
                }
                _ => {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    format!(
        "package {} {{\n{body}}}\n",
        name.expect("a WIT file declares its package")
    )
}

/// The whole WIT, dependencies nested.
fn wit() -> String {
    format!(
        "{MAIN_WIT}\n{}\n{}\n{}\n{}",
        nested(&SPIN_WIT),
        nested(&[SQLITE3_WIT]),
        nested(&[POSTGRES4_WIT]),
        nested(&[CRON_WIT])
    )
}

/// Checks the handler's shape: one argument, no generics, no `self`.
fn handler(item: TokenStream, what: &str) -> Result<syn::ItemFn, syn::Error> {
    let func: syn::ItemFn = syn::parse(item)?;
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.generics,
            format!("a {what} handler cannot be generic"),
        ));
    }
    if func.sig.inputs.len() != 1 || matches!(func.sig.inputs[0], syn::FnArg::Receiver(_)) {
        return Err(syn::Error::new_spanned(
            &func.sig.inputs,
            format!("a {what} handler takes exactly one argument"),
        ));
    }
    Ok(func)
}

/// Bindings of `world` with its `export!`, in a module of the component.
fn bindings(world: &str, shared_types: bool) -> proc_macro2::TokenStream {
    let wit = wit();
    let with = shared_types.then(
        || quote!(with: { "todo-chatbot:kafka-trigger/types@0.1.0": ::trigger_kafka_sdk::types },),
    );
    quote! {
        #[doc(hidden)]
        #[allow(missing_docs, clippy::all)]
        mod bindings {
            ::trigger_kafka_sdk::wit_bindgen::generate!({
                world: #world,
                inline: #wit,
                runtime_path: "::trigger_kafka_sdk::wit_bindgen::rt",
                #with
            });
            pub struct Handler;
            export!(Handler);
        }
    }
}

/// Calls the user's function, on Spin's executor when it is `async`.
fn call(func: &syn::ItemFn, arg: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let name = &func.sig.ident;
    match func.sig.asyncness {
        Some(_) => {
            quote!(::trigger_kafka_sdk::__private::run(async move { super::#name(#arg).await }))
        }
        None => quote!(super::#name(#arg)),
    }
}

/// A handler of one Kafka message at a time:
///
/// ```ignore
/// #[trigger_kafka_sdk::kafka_component]
/// fn handle(message: Message) -> Result<(), Error> { … }
/// ```
///
/// The function may be `async`; it returns `Result<(), E>` for any `E`
/// that converts into `trigger_kafka_sdk::Error` (`anyhow::Error` does, as
/// a retryable error), or `()`.
#[proc_macro_attribute]
pub fn kafka_component(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match handler(item, "Kafka") {
        Ok(func) => func,
        Err(e) => return e.to_compile_error().into(),
    };
    let bindings = bindings("todo-chatbot:kafka-trigger/kafka-handler", true);
    let call = call(&func, quote!(message));
    quote!(
        #func
        #[doc(hidden)]
        mod __trigger_kafka_handler {
            #bindings
            impl bindings::Guest for bindings::Handler {
                fn handle_message(
                    message: ::trigger_kafka_sdk::Message,
                ) -> ::std::result::Result<(), ::trigger_kafka_sdk::Error> {
                    ::trigger_kafka_sdk::__private::message_result(#call)
                }
            }
        }
    )
    .into()
}

/// A handler of batches of Kafka messages (one partition, in order):
///
/// ```ignore
/// #[trigger_kafka_sdk::kafka_batch_component]
/// fn handle(messages: Vec<Message>) -> Result<(), BatchItemFailure> {
///     trigger_kafka_sdk::each(&messages, |message| { … })
/// }
/// ```
///
/// It returns the first failure (`Result<(), BatchItemFailure>`), every
/// failure (`Vec<BatchItemFailure>`), or `()`; it may be `async`.
#[proc_macro_attribute]
pub fn kafka_batch_component(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match handler(item, "Kafka batch") {
        Ok(func) => func,
        Err(e) => return e.to_compile_error().into(),
    };
    let bindings = bindings("todo-chatbot:kafka-trigger/kafka-batch-handler", true);
    let call = call(&func, quote!(messages));
    quote!(
        #func
        #[doc(hidden)]
        mod __trigger_kafka_batch_handler {
            #bindings
            impl bindings::Guest for bindings::Handler {
                fn handle_batch(
                    messages: ::std::vec::Vec<::trigger_kafka_sdk::Message>,
                ) -> ::std::vec::Vec<::trigger_kafka_sdk::BatchItemFailure> {
                    ::trigger_kafka_sdk::__private::batch_result(#call)
                }
            }
        }
    )
    .into()
}

/// A timer handler in the world of Spin's cron trigger (`[[trigger.cron]]`),
/// runnable by this host and by Spin's cron plugin:
///
/// ```ignore
/// #[trigger_kafka_sdk::cron_component]
/// fn tick(metadata: trigger_kafka_sdk::cron::Metadata) -> anyhow::Result<()> { … }
/// ```
#[proc_macro_attribute]
pub fn cron_component(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match handler(item, "cron") {
        Ok(func) => func,
        Err(e) => return e.to_compile_error().into(),
    };
    let bindings = bindings("fermyon:spin-cron/spin-cron", false);
    let call = call(
        &func,
        quote!(::trigger_kafka_sdk::cron::Metadata {
            timestamp: metadata.timestamp
        }),
    );
    quote!(
        #func
        #[doc(hidden)]
        mod __trigger_cron_handler {
            #bindings
            impl bindings::Guest for bindings::Handler {
                fn handle_cron_event(
                    metadata: bindings::Metadata,
                ) -> ::std::result::Result<(), bindings::Error> {
                    ::trigger_kafka_sdk::__private::cron_result(#call).map_err(bindings::Error::Other)
                }
            }
        }
    )
    .into()
}
