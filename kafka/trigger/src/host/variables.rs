//! `fermyon:spin/variables@2.0.0`: the component's own variables only.

use super::bindings::spin::fermyon::spin::variables::{self, Error};
use super::HostState;

impl variables::Host for HostState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        if let Some(error) = crate::variables::name_error(&name) {
            return Ok(Err(Error::InvalidName(error)));
        }
        Ok(match self.component.variables.get(&name) {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(reason)) => Err(Error::Provider(reason.clone())),
            // Spin's wording (`spin_expressions::Resolver::get_template`).
            None => Err(Error::Undefined(format!(
                "no variable for {:?}.{name:?}",
                self.component.id
            ))),
        })
    }
}
