//! `fermyon:spin/variables@2.0.0`: the component's own variables only.

use crate::bindings::spin::fermyon::spin::variables::{self, Error};
use crate::host::HostState;

impl variables::Host for HostState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        if crate::variables::check_name(&name).is_err() {
            return Ok(Err(Error::InvalidName(name)));
        }
        Ok(match self.component.variables.get(&name) {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(reason)) => Err(Error::Provider(reason.clone())),
            None => Err(Error::Undefined(format!(
                "component `{}` has no variable `{name}`",
                self.component.id
            ))),
        })
    }
}
