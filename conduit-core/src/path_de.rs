//! A serde deserializer over [`PathParams`], for [`RequestExt::path`](crate::RequestExt::path).
//!
//! The parameters deserialize into a struct or map (by name), a tuple or sequence (in route
//! order), or — when the route has exactly one — a single value. Each value is text, parsed into
//! the type asked for (`u64`, `bool`, `Uuid`-like newtypes, unit-variant enums, ...). A failure
//! names the parameter it is about.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use crate::PathParams;

/// Why path parameters did not fit the type: the parameter (when one is to blame) and what
/// was wrong with it.
#[derive(Debug)]
pub(crate) struct PathError {
    pub(crate) param: Option<String>,
    pub(crate) message: String,
}

impl PathError {
    fn about(mut self, name: &str) -> Self {
        if self.param.is_none() {
            self.param = Some(name.to_owned());
        }
        self
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(name) => write!(f, "path parameter `{name}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PathError {}

impl de::Error for PathError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            param: None,
            message: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            param: Some(field.to_owned()),
            message: "missing".to_owned(),
        }
    }
}

/// The parameters in route order, with a repeated name (nested routers) kept once: its
/// innermost value, where its first occurrence stood.
pub(crate) fn unique(params: &PathParams) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(params.len());
    for (name, value) in params.iter() {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name, value)),
        }
    }
    out
}

/// The deserializer over all of a request's parameters.
pub(crate) struct ParamsDeserializer<'a> {
    pub(crate) params: Vec<(&'a str, &'a str)>,
}

impl<'a> ParamsDeserializer<'a> {
    fn single(&self) -> Result<ValueDeserializer<'a>, PathError> {
        match self.params.as_slice() {
            [(name, value)] => Ok(ValueDeserializer { name, value }),
            other => Err(de::Error::custom(format_args!(
                "expected 1 path parameter, the route has {}",
                other.len()
            ))),
        }
    }
}

macro_rules! single_value {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for ParamsDeserializer<'de> {
    type Error = PathError;

    single_value! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_identifier
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        if self.params.len() == 1 {
            self.single()?.deserialize_any(visitor)
        } else {
            self.deserialize_map(visitor)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_seq(Seq {
            params: self.params.into_iter(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        if self.params.len() != len {
            return Err(de::Error::custom(format_args!(
                "expected {len} path parameters, the route has {}",
                self.params.len()
            )));
        }
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_map(Map {
            params: self.params.into_iter(),
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    params: std::vec::IntoIter<(&'a str, &'a str)>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = PathError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PathError> {
        match self.params.next() {
            Some((name, value)) => seed
                .deserialize(ValueDeserializer { name, value })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.params.len())
    }
}

struct Map<'a> {
    params: std::vec::IntoIter<(&'a str, &'a str)>,
    value: Option<(&'a str, &'a str)>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = PathError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PathError> {
        match self.params.next() {
            Some((name, value)) => {
                self.value = Some((name, value));
                seed.deserialize(name.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PathError> {
        let (name, value) = self
            .value
            .take()
            .ok_or_else(|| <PathError as de::Error>::custom("value asked before its key"))?;
        seed.deserialize(ValueDeserializer { name, value })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.params.len())
    }
}

/// One parameter's text, parsed into the type asked for.
struct ValueDeserializer<'a> {
    name: &'a str,
    value: &'a str,
}

macro_rules! parse_value {
    ($($method:ident => $visit:ident: $ty:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
            match self.value.parse::<$ty>() {
                Ok(v) => visitor.$visit::<PathError>(v).map_err(|e| e.about(self.name)),
                Err(_) => Err(PathError {
                    param: Some(self.name.to_owned()),
                    message: format!(concat!("`{}` is not a valid ", stringify!($ty)), self.value),
                }),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDeserializer<'de> {
    type Error = PathError;

    parse_value! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
        deserialize_char => visit_char: char,
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor
            .visit_borrowed_str::<PathError>(self.value)
            .map_err(|e| e.about(self.name))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor
            .visit_borrowed_bytes::<PathError>(self.value.as_bytes())
            .map_err(|e| e.about(self.name))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let name = self.name;
        visitor.visit_some(self).map_err(|e| e.about(name))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        let name = self.name;
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.about(name))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        let de: de::value::StrDeserializer<'de, PathError> = self.value.into_deserializer();
        visitor.visit_enum(de).map_err(|e| e.about(self.name))
    }

    // One value is text: a sequence, map or struct gets serde's "invalid type: string" error,
    // naming the parameter.
    serde::forward_to_deserialize_any! { seq tuple tuple_struct map struct }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_unit()
    }
}
