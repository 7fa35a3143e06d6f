//! Schemas: attributes with descriptions and plan behaviour, nested attributes and blocks.

use std::collections::BTreeMap;

use crate::cty::Type;
use crate::proto::tfplugin6 as pb;

#[derive(Debug, Clone)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub description: &'static str,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub write_only: bool,
    /// A change forces a new resource (RequiresReplace).
    pub requires_replace: bool,
    /// A computed value is carried over from state instead of becoming unknown on update.
    pub use_state_for_unknown: bool,
    /// Attributes of a single nested object (`placement = { … }`).
    pub nested: Option<Vec<Attr>>,
}

impl Attr {
    fn new(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self {
            name,
            ty,
            description,
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            requires_replace: false,
            use_state_for_unknown: false,
            nested: None,
        }
    }
    pub fn required(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self { required: true, ..Self::new(name, ty, description) }
    }
    pub fn optional(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self { optional: true, ..Self::new(name, ty, description) }
    }
    pub fn computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self { computed: true, ..Self::new(name, ty, description) }
    }
    /// Optional; when not set, the service decides and the value is known after apply.
    pub fn optional_computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self { optional: true, computed: true, ..Self::new(name, ty, description) }
    }
    pub fn nested_object(name: &'static str, attrs: Vec<Attr>, description: &'static str) -> Self {
        let ty = Type::Object(attrs.iter().map(|a| (a.name.to_string(), a.ty.clone())).collect());
        Self { optional: true, nested: Some(attrs), ..Self::new(name, ty, description) }
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn replace(mut self) -> Self {
        self.requires_replace = true;
        self
    }
    /// Write-only (Terraform 1.11): sent in the configuration, never kept in plan or state.
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    pub fn keep(mut self) -> Self {
        self.use_state_for_unknown = true;
        self
    }

    fn to_proto(&self) -> pb::schema::Attribute {
        let nested = self.nested.as_ref().map(|attrs| pb::schema::Object {
            attributes: attrs.iter().map(Attr::to_proto).collect(),
            nesting: pb::schema::object::NestingMode::Single as i32,
            ..Default::default()
        });
        pb::schema::Attribute {
            name: self.name.to_string(),
            // A nested attribute's type is given by its nested_type, not by `type`.
            r#type: if nested.is_some() { Vec::new() } else { self.ty.to_json().to_string().into_bytes() },
            nested_type: nested,
            description: self.description.to_string(),
            required: self.required,
            optional: self.optional,
            computed: self.computed,
            sensitive: self.sensitive,
            write_only: self.write_only,
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }
}

/// A nested block with SINGLE nesting (e.g. `timeouts { … }`).
#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub name: &'static str,
    pub block: Block,
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub description: &'static str,
    pub attrs: Vec<Attr>,
    pub blocks: Vec<NestedBlock>,
}

impl Block {
    pub fn ty(&self) -> Type {
        let mut m: BTreeMap<String, Type> = self.attrs.iter().map(|a| (a.name.to_string(), a.ty.clone())).collect();
        for b in &self.blocks {
            m.insert(b.name.to_string(), b.block.ty());
        }
        Type::Object(m)
    }
    fn to_proto(&self, version: i64) -> pb::schema::Block {
        pb::schema::Block {
            version,
            attributes: self.attrs.iter().map(Attr::to_proto).collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.to_string(),
                    block: Some(b.block.to_proto(0)),
                    nesting: pb::schema::nested_block::NestingMode::Single as i32,
                    min_items: 0,
                    max_items: 0,
                })
                .collect(),
            description: self.description.to_string(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(description: &'static str, attrs: Vec<Attr>) -> Self {
        Self { version: 0, block: Block { description, attrs, blocks: Vec::new() } }
    }
    /// Adds the conventional `timeouts { create, update, delete }` block.
    pub fn with_timeouts(mut self, which: &[&'static str]) -> Self {
        // The attributes come from the block's model, so state decodes into `Field<Timeouts>`.
        let attrs = super::resource::Timeouts::attrs().into_iter().filter(|a| which.contains(&a.name)).collect();
        self.block.blocks.push(NestedBlock {
            name: "timeouts",
            block: Block {
                description: "How long operations may take before Terraform stops waiting.",
                attrs,
                blocks: vec![],
            },
        });
        self
    }
    pub fn ty(&self) -> Type {
        self.block.ty()
    }
    pub fn to_proto(&self) -> pb::Schema {
        pb::Schema { version: self.version, block: Some(self.block.to_proto(self.version)) }
    }
}
